"""Object backends (local folder, S3/R2) behind the ObjectStore Protocol."""

from sync.objects.base import ObjectStore, normalize_storage_class, validate_key
from sync.objects.local import LocalObjectStore
from sync.objects.s3 import S3ObjectStore

__all__ = ["LocalObjectStore", "ObjectStore", "S3ObjectStore", "normalize_storage_class", "validate_key"]
