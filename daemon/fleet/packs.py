"""A project's recovery packs, read from the local object store or the bucket, oldest first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daemon.core.errors import NotFound, Unavailable

if TYPE_CHECKING:
    from daemon.runtime import Runtime

# A recovery pack holds one version's new objects, compressed: a few KiB to a few MiB. What a restore holds of
# them at once is capped by what they weigh (as the bucket's reads are, at 64 MiB an object), before reading.
MAX_PACK_BYTES = 64 * 2**20
MAX_PACKS_BYTES = 256 * 2**20


def load_packs(rt: Runtime, user_id: str, project_id: str) -> list[tuple[str, bytes]]:
    """Every recovery pack of the project (local store first, else the bucket), oldest first; 404 when none."""
    prefix = rt.layout.packs_prefix(user_id, project_id)
    keys = set(rt.local_objects.list(prefix))
    if rt.remote_objects is not None:
        try:
            keys |= set(rt.remote_objects.list(prefix))
        except Exception as exc:
            raise Unavailable(f"cannot list packs in the object store: {exc}", code="restore_failed") from exc
    if not keys:
        raise NotFound(f"no packs stored for {user_id}/{project_id}", code="no_packs")

    def top_of(key: str) -> str:
        return key.rsplit("_to_", 1)[-1].removesuffix(".pack.zip")

    packs: list[tuple[str, bytes]] = []
    total = 0
    for key in sorted(keys, key=top_of):
        local = rt.layout.local_object(key)
        try:
            if local.is_file():
                if (size := local.stat().st_size) > MAX_PACK_BYTES:
                    raise Unavailable(f"pack {key} is {size} bytes, over the {MAX_PACK_BYTES} byte cap of one pack",
                                      code="history_limit", pack=key)
                data = local.read_bytes()
            elif rt.remote_objects is not None:
                data = rt.remote_objects.open_bytes(key)
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
