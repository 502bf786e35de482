"""A project's recovery packs, read from the local object store or the bucket, oldest first."""

from __future__ import annotations

from daemon.core.errors import NotFound, Unavailable
from daemon.core.layout import Layout
from sync.objects import ObjectStore

# A recovery pack holds one version's new objects, compressed: a few KiB to a few MiB. What a restore holds of
# them at once is capped by what they weigh (as the bucket's reads are, at 64 MiB an object), before reading.
MAX_PACK_BYTES = 64 * 2**20
MAX_PACKS_BYTES = 256 * 2**20


def load_packs(layout: Layout, local: ObjectStore, remote: ObjectStore | None, user_id: str,
               project_id: str) -> list[tuple[str, bytes]]:
    """Every recovery pack of the project (the local store first, else the bucket `remote`), oldest first; 404
    when none."""
    prefix = layout.packs_prefix(user_id, project_id)
    keys = set(local.list(prefix))
    if remote is not None:
        try:
            keys |= set(remote.list(prefix))
        except Exception as exc:
            raise Unavailable(f"cannot list packs in the object store: {exc}", code="restore_failed") from exc
    if not keys:
        raise NotFound(f"no packs stored for {user_id}/{project_id}", code="no_packs")

    def top_of(key: str) -> str:
        return key.rsplit("_to_", 1)[-1].removesuffix(".pack.zip")

    packs: list[tuple[str, bytes]] = []
    total = 0
    for key in sorted(keys, key=top_of):
        path = layout.local_object(key)
        try:
            if path.is_file():
                if (size := path.stat().st_size) > MAX_PACK_BYTES:
                    raise Unavailable(f"pack {key} is {size} bytes, over the {MAX_PACK_BYTES} byte cap of one pack",
                                      code="history_limit", pack=key)
                data = path.read_bytes()
            elif remote is not None:
                data = remote.open_bytes(key)
            else:
                raise FileNotFoundError(key)
        except Unavailable:
            raise
        except Exception as exc:
            raise Unavailable(f"pack {key} unreadable: {exc}", code="missing_pack", pack=key) from exc
        total += len(data)
        if total > MAX_PACKS_BYTES:
            raise Unavailable(f"the project's packs are over {MAX_PACKS_BYTES} bytes together; restore refused",
                              code="history_limit", pack=key)
        packs.append((key, data))
    return packs
