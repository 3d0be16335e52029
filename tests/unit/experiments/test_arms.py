"""Assignment, team-draft interleaving and shadow measures (pure parts of experiments.arms)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from yarl import URL

from gateway.errors import ClientRequestError
from gateway.experiments.arms import (
    CONTROL_TEAM,
    TREATMENT_TEAM,
    Experiments,
    bucket,
    kendall_tau,
    overlap_at_k,
    pick,
    team_draft,
)
from gateway.experiments.events import EventLog, MemoryBackend
from gateway.settings import ExperimentSettings, Variant

# Chi-square critical values at p = 0.001 (df = 1, 2): a correct split fails this 1 time in 1000,
# and the keys are fixed, so the test is deterministic.
CHI2_999 = {1: 10.83, 2: 13.82}


def experiments(**values: object) -> Experiments:
    conf = ExperimentSettings.model_validate({"mode": "ab", **values})
    return Experiments(conf, EventLog(MemoryBackend(100), k=10))


def test_bucket_is_stable_and_salted() -> None:
    assert bucket("exp1", "user-1") == bucket("exp1", "user-1")
    assert 0 <= bucket("exp1", "user-1") < 1
    assert bucket("exp1", "user-1") != bucket("exp2", "user-1")
    # The salt and key are length-delimited: ("a", "b:c") is not ("a:b", "c").
    assert bucket("a", "b:c") != bucket("a:b", "c")


def test_split_follows_the_shares() -> None:
    variants = [
        Variant(name="baseline", share=50, rerank=False),
        Variant(name="rerank", share=30),
        Variant(name="w20", share=20, window=20),
    ]
    n = 20_000
    counts = Counter(pick(variants, bucket("exp1", f"user-{i}")).name for i in range(n))
    expected = {"baseline": 0.5 * n, "rerank": 0.3 * n, "w20": 0.2 * n}
    chi2 = sum((counts[k] - e) ** 2 / e for k, e in expected.items())
    assert chi2 < CHI2_999[2], counts


def test_zero_share_is_never_picked() -> None:
    variants = [Variant(name="a", share=1), Variant(name="off", share=0)]
    assert {pick(variants, i / 100).name for i in range(100)} == {"a"}


@pytest.mark.parametrize(
    ("key", "headers", "url"),
    [
        ("header:X-User-Id", {"X-User-Id": "u42"}, "/docs/_search"),
        ("cookie:uid", {"Cookie": "theme=dark; uid=u42"}, "/docs/_search"),
        ("param:uid", {}, "/docs/_search?uid=u42&q=x"),
    ],
)
def test_assignment_is_sticky_per_key_source(key: str, headers: dict[str, str], url: str) -> None:
    exp = experiments(key=key)
    arms = [exp.assign(headers, URL(url)) for _ in range(20)]
    assert len({a.variant for a in arms}) == 1
    assert len({a.search_id for a in arms}) == 20  # every search gets its own id
    assert exp.user_key(headers, URL(url)) == "u42"
    assert "uid" not in arms[0].url.query  # the gateway's parameter never goes upstream
    if key.startswith("param"):
        assert arms[0].url.query["q"] == "x"


def test_requests_without_key_are_assigned_per_request() -> None:
    exp = experiments()
    random.seed(7)
    counts = Counter(exp.assign({}, URL("/_search")).variant for _ in range(2_000))
    chi2 = sum((c - 1_000) ** 2 / 1_000 for c in counts.values())
    assert set(counts) == {"baseline", "rerank"}
    assert chi2 < CHI2_999[1], counts


def test_override_header_forces_a_variant_and_can_be_disabled() -> None:
    exp = experiments()
    users = [f"user-{i}" for i in range(40)]
    forced = [
        exp.assign({"X-User-Id": u, "X-Experiment-Override": "rerank"}, URL("/")) for u in users
    ]
    assert {a.variant for a in forced} == {"rerank"} and all(a.override for a in forced)
    assert not exp.assign({"X-User-Id": "u1"}, URL("/")).override
    with pytest.raises(ClientRequestError) as bad:
        exp.assign({"X-User-Id": "u1", "X-Experiment-Override": "nope"}, URL("/"))
    assert bad.value.status == 400 and bad.value.error_type == "illegal_argument_exception"
    assert "[baseline, rerank]" in bad.value.reason
    blank = exp.assign({"X-User-Id": "u1", "X-Experiment-Override": " "}, URL("/"))
    assert blank.variant == exp.assign({"X-User-Id": "u1"}, URL("/")).variant
    closed = experiments(override_header="")
    natural = {closed.assign({"X-User-Id": u}, URL("/")).variant for u in users}
    with_header = {
        closed.assign({"X-User-Id": u, "X-Experiment-Override": "rerank"}, URL("/")).variant
        for u in users
    }
    assert natural == with_header == {"baseline", "rerank"}


def test_control_arm_is_not_reranked() -> None:
    exp = experiments()
    arm = exp.assign({"X-Experiment-Override": "baseline"}, URL("/"))
    assert (arm.variant, arm.rerank) == ("baseline", False)


def test_interleave_and_shadow_modes_name_their_arm() -> None:
    inter = experiments(mode="interleave").assign({"X-User-Id": "u"}, URL("/"))
    assert (inter.variant, inter.mode, inter.rerank) == ("interleave", "interleave", True)
    shadow = experiments(mode="shadow").assign({"X-User-Id": "u"}, URL("/"))
    assert (shadow.variant, shadow.mode, shadow.rerank) == ("baseline", "shadow", True)


def test_team_draft_invariants() -> None:
    rng = random.Random(1234)
    for trial in range(300):
        n = rng.randint(0, 30)
        control = list(range(n))
        treatment = control[:]
        rng.shuffle(treatment)
        merged, teams = team_draft(control, treatment, random.Random(trial))
        assert sorted(merged) == control  # every hit once, none lost
        assert len(teams) == len(merged)
        assert set(teams) <= {CONTROL_TEAM, TREATMENT_TEAM}
        for end in range(len(teams) + 1):  # at every prefix (so every page) sizes differ ≤ 1
            assert abs(teams[:end].count("A") - teams[:end].count("B")) <= 1
        # Each team's items appear in the order that team ranked them.
        for team, ranking in ((CONTROL_TEAM, control), (TREATMENT_TEAM, treatment)):
            picked = [m for m, t in zip(merged, teams, strict=True) if t == team]
            assert picked == sorted(picked, key=ranking.index)


def test_team_draft_with_lists_of_different_items() -> None:
    merged, teams = team_draft(["a", "b", "c"], ["c", "d"], random.Random(0))
    assert len(merged) == len(set(merged)) == 4
    assert teams.count("A") + teams.count("B") == 4


def test_team_draft_flips_a_coin_per_round() -> None:
    firsts = Counter(team_draft([1, 2], [2, 1], random.Random(s))[1][0] for s in range(400))
    assert 150 < firsts["A"] < 250


def test_overlap_and_kendall_tau() -> None:
    assert overlap_at_k([1, 2, 3, 4], [4, 3, 2, 1], 2) == 0.0
    assert overlap_at_k([1, 2, 3, 4], [2, 1, 4, 3], 2) == 1.0
    assert kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3], [2, 1, 3]) == pytest.approx(1 / 3)
