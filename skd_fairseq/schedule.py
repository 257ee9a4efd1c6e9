"""The SKD weight alpha over updates. No fairseq imports here."""


def check_schedule(alpha_max: float, start_update: int, warmup_updates: int) -> None:
    if not 0.0 <= alpha_max <= 1.0:
        raise ValueError(f"--skd-alpha must be in [0, 1], got {alpha_max}")
    if start_update < 0:
        raise ValueError(f"--skd-start-update must be >= 0, got {start_update}")
    if warmup_updates < 0:
        raise ValueError(f"--skd-warmup-updates must be >= 0, got {warmup_updates}")


def skd_alpha(num_updates: int, alpha_max: float, start_update: int = 0, warmup_updates: int = 0) -> float:
    """alpha(u): 0 before u0, then alpha_max * min(1, (u - u0 + 1) / W); W = 0 jumps to alpha_max.

    ``num_updates`` is the number of updates already applied, i.e. the update now
    being computed is the (u+1)-th: with u0 = 0 and W = 4 the first update trains
    with alpha_max / 4.
    """
    if num_updates < start_update:
        return 0.0
    if warmup_updates == 0:
        return float(alpha_max)
    return float(alpha_max) * min(1.0, (num_updates - start_update + 1) / warmup_updates)
