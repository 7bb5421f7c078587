"""--shard K/N: the N shards cover every input exactly once, whatever the listing order."""

import json
import random

import pytest

from lumen_cli.cli.app import main
from lumen_cli.cli.plan import Job
from lumen_cli.cli.shard import parse_shard, take_shard
from lumen_cli.errors import UsageError
from tests.conftest import save_png


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40])
def test_shards_partition_the_inputs(n):
    names = [f"d{i % 5}/img{i:03d}.jpg" for i in range(37)]
    cover = []
    sizes = []
    for k in range(n):
        shuffled = names[:]
        random.Random(k).shuffle(shuffled)  # each worker may list the files in another order
        part = [j.source for j in take_shard([Job(s, None) for s in shuffled], (k, n))]
        cover += part
        sizes.append(len(part))
    assert sorted(cover) == sorted(names)  # every input once, none twice
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("bad", ["3", "2/2", "-1/3", "a/b", "1/0"])
def test_bad_specs(bad):
    with pytest.raises(UsageError):
        parse_shard(bad)


def test_enhance_shards_write_each_output_once(tmp_path, dim_image, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(5):
        save_png((src if i % 2 else src / "sub") / f"p{i}.png", dim_image(16, 16, seed=i))
    out = tmp_path / "out"
    done = []
    for k in range(3):
        args = ["enhance", str(src), "-r", "-o", str(out), "--shard", f"{k}/3", "--json", "-q"]
        assert main(args) == 0
        recs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
        done += [r["output"] for r in recs if r["status"] == "done"]
    assert len(done) == 5 and len(set(done)) == 5
    assert sorted(p.name for p in out.rglob("*.png")) == [f"p{i}.png" for i in range(5)]
