"""rclone's crypt remote: file contents in NaCl secretbox chunks and file names
encrypted with EME-AES, read and written byte for byte as rclone does."""
