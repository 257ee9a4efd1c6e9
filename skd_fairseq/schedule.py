"""The weights over training: SKD's alpha over updates, progressive self-KD's a_t over epochs.
No fairseq imports here."""


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


def check_progressive_alpha(alpha_final: float, max_epoch: int) -> None:
    if not 0.0 <= alpha_final <= 1.0:
        raise ValueError(f"--ps-kd-alpha must be in [0, 1], got {alpha_final}")
    if max_epoch <= 0:
        raise ValueError(
            "progressive self-KD weighs the teacher by a_t = a_T * t / T over T epochs: it needs "
            f"--max-epoch T > 0 (got {max_epoch}; a run bounded by --max-update alone has no T)"
        )


def progressive_alpha(epoch: int, alpha_final: float, max_epoch: int) -> float:
    """PS-KD's a_t = a_T * t / T in epoch t (1-based), capped at a_T; 0 in the first epoch,
    which has no previous epoch to learn from."""
    if epoch <= 1:
        return 0.0
    return float(alpha_final) * min(1.0, epoch / max_epoch)
