"""CurriculumSampler: the original's linear annealing, the paper's temperature schedule,
determinism and DDP sharding."""

from __future__ import annotations

from collections import Counter

import pytest

from perceptok_llava.curriculum import CurriculumSampler

TASKS = ["depth_generation"] * 50 + ["box_listing"] * 50 + ["relative_depth_cot"] * 30 + ["counting_direct"] * 30
ATOMIC = ["depth_generation", "box_listing"]


def share_atomic(indices):
    return sum(TASKS[i] in ATOMIC for i in indices) / len(indices)


def test_linear_annealing_from_all_atomic_to_one_tenth():
    s = CurriculumSampler(TASKS, ATOMIC, samples_per_stage=2000, seed=1)
    assert [round(s.atomic_share(k), 2) for k in range(10)] == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert share_atomic(s.stage_indices(0)) == 1.0
    assert abs(share_atomic(s.stage_indices(9)) - 0.1) < 0.03
    assert len(list(s)) == len(s) == 20_000


def test_temperature_schedule_sharpens_towards_hard_tasks():
    s = CurriculumSampler(TASKS, ATOMIC, samples_per_stage=4000, schedule="temperature", tau0=1.0, lam=4.0)
    assert s.temperature(0) == 1.0 and s.temperature(5) == pytest.approx(1 / 3)
    s.update_losses({"counting_direct": 2.0, "relative_depth_cot": 1.0, "depth_generation": 0.5, "box_listing": 0.5})
    early, late = s.task_probabilities(0), s.task_probabilities(9)
    assert late["counting_direct"] > early["counting_direct"] > early["box_listing"]
    counts = Counter(TASKS[i] for i in s.stage_indices(9))
    assert counts.most_common(1)[0][0] == "counting_direct"


def test_uniform_schedule_mixes_every_task_evenly_in_every_stage():
    s = CurriculumSampler(TASKS, ATOMIC, samples_per_stage=4000, schedule="uniform", seed=2)
    for stage in (0, 9):
        counts = Counter(TASKS[i] for i in s.stage_indices(stage))
        assert set(counts) == set(TASKS) and all(abs(n / 4000 - 0.25) < 0.03 for n in counts.values())
    only = CurriculumSampler(["relative_depth_direct"] * 7, ATOMIC, samples_per_stage=10, schedule="uniform")
    assert sorted(set(only)) == list(range(7)) and len(only) == 100  # one task alone needs no atomic one


def test_deterministic_and_sharded_across_ranks():
    a = CurriculumSampler(TASKS, ATOMIC, samples_per_stage=100, seed=3)
    b = CurriculumSampler(TASKS, ATOMIC, samples_per_stage=100, seed=3)
    assert a.stage_indices(4) == b.stage_indices(4)
    assert a.stage_indices(4) != CurriculumSampler(TASKS, ATOMIC, samples_per_stage=100, seed=4).stage_indices(4)
    ranks = [CurriculumSampler(TASKS, ATOMIC, samples_per_stage=100, seed=3, rank=r, world_size=2) for r in range(2)]
    shards = [r.stage_indices(4) for r in ranks]
    assert len(shards[0]) == len(shards[1]) == 50
    merged = [None] * 100
    merged[0::2], merged[1::2] = shards
    assert merged == a.stage_indices(4)


def test_draws_are_host_side_whatever_the_default_device():
    """The sampler draws on the CPU with a CPU generator: a script that sets
    ``torch.set_default_device("cuda")`` gets the same draws (here ``meta`` stands in for it, and
    any tensor the sampler made on the default device would fail against the CPU generator)."""
    import torch

    for schedule in ("linear", "temperature"):
        plain = CurriculumSampler(TASKS, ATOMIC, samples_per_stage=100, seed=5, schedule=schedule).stage_indices(3)
        with torch.device("meta"):
            assert CurriculumSampler(TASKS, ATOMIC, samples_per_stage=100, seed=5, schedule=schedule).stage_indices(3) == plain


def test_bad_arguments():
    with pytest.raises(ValueError, match="schedule"):
        CurriculumSampler(TASKS, ATOMIC, 10, schedule="cosine")
    with pytest.raises(ValueError, match="needs both"):
        CurriculumSampler(["depth_generation"] * 3, ATOMIC, 10)
    with pytest.raises(ValueError, match="rank"):
        CurriculumSampler(TASKS, ATOMIC, 10, rank=2, world_size=2)


# token lengths of the records above: by task (a depth chain of thought is the longest) with spread
LENGTHS = [130 + i % 7 for i in range(50)] + [60 + i % 20 for i in range(50)] + [200 + i % 9 for i in range(30)] + \
          [40 + i % 5 for i in range(30)]


def padding(indices, batch):
    """The share of a batch's slots that are padding, each batch padded to its longest record."""
    rows = [[LENGTHS[i] for i in indices[k : k + batch]] for k in range(0, len(indices), batch)]
    return 1 - sum(map(sum, rows)) / sum(max(r) * len(r) for r in rows)


@pytest.mark.parametrize("world, batch", [(1, 8), (3, 2)])
def test_records_of_like_length_share_a_batch(world, batch):
    """With lengths and no group size, a stage holds the same records, in batches of like length
    in random order."""
    plain = CurriculumSampler(TASKS, ATOMIC, 96, stages=3, seed=2, schedule="temperature", batch_size=world * batch)
    grouped = [CurriculumSampler(TASKS, ATOMIC, 96, stages=3, seed=2, schedule="temperature", rank=r, world_size=world,
                                 batch_size=batch, lengths=LENGTHS) for r in range(world)]
    for stage in range(3):
        shards = [g.stage_indices(stage) for g in grouped]
        assert len({len(s) for s in shards}) == 1
        assert Counter(sum(shards, [])) == Counter(plain.stage_indices(stage))
        for shard in shards:
            assert padding(shard, batch) < padding(plain.stage_indices(stage), batch) / 3
        firsts = [LENGTHS[s[0]] for s in shards]
        assert max(firsts) - min(firsts) < 25  # a global batch's ranks hold neighbours in length
    batches = [LENGTHS[grouped[0].stage_indices(1)[k]] for k in range(0, 96 // world, batch)]
    assert batches != sorted(batches) and batches != sorted(batches, reverse=True)  # not longest first
    with pytest.raises(ValueError, match="one per record"):
        CurriculumSampler(TASKS, ATOMIC, 10, lengths=LENGTHS[:-1])


def test_sorting_within_an_optimiser_step_keeps_its_records():
    """group_size = one optimiser step (3 ranks × 2 records × 4 accumulated): every step holds the
    records drawn for it, the stage is rounded up to whole steps, and the ranks' micro-batches
    pad less than unsorted."""
    world, batch, step = 3, 2, 24
    plain = CurriculumSampler(TASKS, ATOMIC, 50, stages=2, seed=1, batch_size=world * batch, group_size=step)
    ranks = [CurriculumSampler(TASKS, ATOMIC, 50, stages=2, seed=1, rank=r, world_size=world, batch_size=batch,
                               lengths=LENGTHS, group_size=step) for r in range(world)]
    unsorted = [CurriculumSampler(TASKS, ATOMIC, 50, stages=2, seed=1, rank=r, world_size=world, batch_size=batch,
                                  group_size=step) for r in range(world)]
    assert plain.stage_size == ranks[0].stage_size == 72  # 50 rounded up to 3 steps of 24
    for stage in range(2):
        drawn, shards = plain.stage_indices(stage), [r.stage_indices(stage) for r in ranks]
        per_rank = step // world  # each rank's records in one step
        for k in range(3):
            mine = sum((s[k * per_rank : (k + 1) * per_rank] for s in shards), [])
            assert Counter(mine) == Counter(drawn[k * step : (k + 1) * step])
        assert sum(padding(s, batch) for s in shards) < sum(padding(u.stage_indices(stage), batch) for u in unsorted) / 2
    with pytest.raises(ValueError, match="multiple of"):
        CurriculumSampler(TASKS, ATOMIC, 10, world_size=3, batch_size=2, group_size=8)


@pytest.mark.parametrize("samples, world, batch", [(64, 3, 1), (25, 3, 2), (7, 2, 4)])
def test_every_rank_gets_the_same_batches_in_every_stage(samples, world, batch):
    """Issue 13: 64 records a stage on 3 ranks gave 22/21/21 records, so rank 0 ran one step more
    and blocked in all-reduce. Stages are now rounded up to whole global batches (drawn, not
    repeated), and the ranks' shards of a stage are disjoint parts of one global order."""
    ranks = [CurriculumSampler(TASKS, ATOMIC, samples, stages=3, seed=5, rank=r, world_size=world, batch_size=batch)
             for r in range(world)]
    glob = CurriculumSampler(TASKS, ATOMIC, samples, stages=3, seed=5, batch_size=world * batch)
    for stage in range(3):
        shards = [r.stage_indices(stage) for r in ranks]
        assert len({len(s) for s in shards}) == 1 and len(shards[0]) % batch == 0
        assert len(shards[0]) * world >= samples
        order = glob.stage_indices(stage)  # what accelerate's loader deals out batch by batch
        dealt = [order[k : k + batch] for k in range(0, len(order), batch)]
        assert shards == [sum(dealt[r::world], []) for r in range(world)]
    assert len({len(r) for r in ranks}) == 1 and len(list(ranks[0])) == len(ranks[0])
