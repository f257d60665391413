"""Side-by-side benchmark of this project against diffusers' MarigoldDepthPipeline (``python -m bench``)."""


def read_cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (its first processor), or None where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return set(f.read().split("flags")[1].split("\n")[0].split())
    except (OSError, IndexError):
        return None
