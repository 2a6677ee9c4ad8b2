"""The VFS engine: directory cache, node tree and file handles over a RemoteStorage."""

from application.vfs.nodes import ROOT_INODE, NodeAttr
from application.vfs.vfs import FsStats, Vfs

__all__ = ["ROOT_INODE", "FsStats", "NodeAttr", "Vfs"]
