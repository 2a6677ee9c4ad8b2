"""The option table of each backend type cloudvol declares, one module per type
(or family); `domain.backends` collects them."""
