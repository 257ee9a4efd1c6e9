"""The fast tier's guards (tests/conftest.py): a test outside `slow` cannot start a command or write a
checkpoint, and a pipeline test counts as slow, so `-m "not slow"` leaves it out."""

import conftest
import pytest
from conftest import run, save_checkpoint


def test_run_and_save_checkpoint_fail_a_test_of_the_fast_tier(request, tmp_path):
    with pytest.raises(pytest.fail.Exception) as failure:
        run(["true"])
    assert str(failure.value).startswith(f"{request.node.nodeid} runs true but is not marked slow: mark it")
    with pytest.raises(pytest.fail.Exception, match=r"writes the fairseq checkpoint .*c\.pt but is not marked slow"):
        save_checkpoint(tmp_path / "c.pt", None, None, None, None)
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.slow
def test_a_slow_test_runs_commands():
    assert run(["true"]).returncode == 0


class CollectedItem:
    """What pytest_collection_modifyitems reads and writes of an item: its markers."""

    def __init__(self, *markers):
        self.markers = set(markers)

    def get_closest_marker(self, name):
        return name if name in self.markers else None

    def add_marker(self, name):
        self.markers.add(name)


def test_a_pipeline_test_counts_as_slow_and_runs_first():
    plain, slow, pipeline = CollectedItem(), CollectedItem("slow"), CollectedItem("pipeline")
    items = [plain, slow, pipeline]
    conftest.pytest_collection_modifyitems(items)
    assert items == [pipeline, slow, plain]
    assert pipeline.markers == {"pipeline", "slow"} and plain.markers == set()
