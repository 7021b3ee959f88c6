"""The ratio statistic both benches print (benches/startup.sh, benches/snapshot.sh).

The targets are set on median(gvpod) / median(bare). One run of a command
on a small VM varies by tens of ms, so the benches print beside that ratio
how far it moves with the sample: a bootstrap interval, each tool's runs
resampled on their own (they are not paired).
"""
import random
import statistics


def median_ratio_interval(a, b, level=0.90, draws=2000, seed=8):
    """The `level` bootstrap interval of median(a) / median(b), as (low, high)."""
    rng = random.Random(seed)
    rs = sorted(
        statistics.median(rng.choices(a, k=len(a))) / statistics.median(rng.choices(b, k=len(b)))
        for _ in range(draws)
    )
    cut = int(draws * (1 - level) / 2)
    return rs[cut], rs[draws - 1 - cut]
