"""The artifact files of a run, read by pandas/pyarrow as a user reads them (docs/api.md,
"Artifacts"): rows equal to the JSON result, UTC timestamps, typed columns, and the provenance
recomputed from bars.parquet with the snippet docs/market-data.md shows (run from the document
itself, so the document cannot drift).

`pipai run --artifacts` on generated bars; the binary is built with cargo if needed.

Run: infra/pytest.sh -q infra/tests/test_artifacts.py
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]

JOB = {
    # Every field explicit, defaults included: this body is the resolved config.
    "template_id": "tpl_ma_cross",
    "params": {"fast": 10, "slow": 50, "direction": "both", "fraction": "1"},
    "symbols": ["BTCUSDT"],
    "timeframe": "1m",
    "start": "2024-03-02T00:00:00Z",
    "end": "2024-03-04T23:59:00Z",
    "capital": "10000.00",
    "leverage": 1,
    "fee_model": "fixed_bps",
    "fee_bps": "5",
    "slippage_bps": "1",
}


def pipai_binary() -> Path:
    out = subprocess.run(
        ["cargo", "build", "-q", "-p", "pipai", "--bin", "pipai", "--message-format=json"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            return Path(msg["executable"])
    raise AssertionError("cargo did not name the pipai binary")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("artifacts")
    pipai = str(pipai_binary())
    gen = ["data", "generate", "--symbol", "BTCUSDT", "--from", "2024-03-01", "--to", "2024-03-06", "--out", "bars.csv"]
    subprocess.run([pipai, *gen], cwd=d, check=True, capture_output=True)
    (d / "job.json").write_text(json.dumps(JOB))
    args = ["run", "--config", "job.json", "--data", "bars.csv", "--out", "result.json", "--artifacts", "art"]
    subprocess.run([pipai, *args], cwd=d, check=True, capture_output=True)
    return d / "art", json.loads((d / "result.json").read_text())


def as_decimal(x) -> Decimal:
    """A float64 as the shortest decimal that reads back to it."""
    return Decimal(repr(float(x)))


def doc_snippet() -> dict:
    """The Python block of docs/market-data.md's "Provenance of a result", executed."""
    text = (REPO / "docs/market-data.md").read_text()
    section = text[text.index("## Provenance of a result"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/market-data.md", "exec"), namespace)  # noqa: S102 - our own document
    return namespace


def test_equity_has_a_row_per_bar_in_utc_and_matches_the_result(run):
    art, result = run
    eq = pd.read_parquet(art / "equity.parquet")
    assert list(eq.columns) == ["open_time", "equity", "drawdown"]
    assert str(eq["open_time"].dtype) == "datetime64[ms, UTC]"
    assert eq["equity"].dtype == "float64" and eq["drawdown"].dtype == "float64"
    assert len(eq) == result["summary"]["bars"] == 3 * 1440
    assert eq["open_time"].iloc[0] == pd.Timestamp(result["summary"]["first_bar_time"])
    assert eq["open_time"].iloc[-1] == pd.Timestamp(result["summary"]["last_bar_time"])
    assert (eq["drawdown"] <= 0).all()
    assert abs(as_decimal(eq["drawdown"].min()) - Decimal(result["metrics"]["max_drawdown"])) <= Decimal("1e-10")
    assert abs(as_decimal(eq["equity"].iloc[-1]) - Decimal(result["summary"]["final_equity"])) <= Decimal("1e-8")
    # The daily curve is the equity at each UTC day's last bar.
    daily = eq.groupby(eq["open_time"].dt.floor("D"))["equity"].last()
    assert len(daily) == len(result["equity_curve"])
    for (day, value), (time, equity) in zip(daily.items(), result["equity_curve"]):
        assert day == pd.Timestamp(time)
        assert abs(as_decimal(value) - Decimal(equity)) <= Decimal("1e-8")
    # The CSV: the same numbers, bit for bit, and the API's time text.
    csv = pd.read_csv(art / "equity.csv", dtype={"open_time": str})
    assert list(csv.columns) == ["open_time", "equity", "drawdown"]
    assert (csv["equity"].to_numpy() == eq["equity"].to_numpy()).all()
    assert (csv["drawdown"].to_numpy() == eq["drawdown"].to_numpy()).all()
    assert csv["open_time"].iloc[0] == result["summary"]["first_bar_time"]
    assert (pd.to_datetime(csv["open_time"], utc=True).dt.as_unit("ms") == eq["open_time"]).all()


def test_trades_are_the_results_trades_typed(run):
    art, result = run
    trades = result["trades"]
    assert len(trades) > 10
    schema = pq.read_schema(art / "trades.parquet")
    assert str(schema.field("entry_time").type) == "timestamp[ms, tz=UTC]"
    assert str(schema.field("pnl").type) == "decimal128(38, 8)"
    df = pd.read_parquet(art / "trades.parquet")
    fields = ["id", "side", "symbol", "entry_time", "entry_price", "exit_time", "exit_price", "qty", "pnl", "fee", "exit_reason"]
    assert list(df.columns) == fields
    assert len(df) == len(trades)
    assert str(df["entry_time"].dtype) == "datetime64[ms, UTC]"
    for row, t in zip(df.itertuples(index=False), trades):
        assert row.id == t["id"] and row.side == t["side"] and row.symbol == t["symbol"]
        assert row.exit_reason == t["exit_reason"]
        assert row.entry_time == pd.Timestamp(t["entry_time"]) and row.exit_time == pd.Timestamp(t["exit_time"])
        for k in ["entry_price", "exit_price", "qty", "pnl", "fee"]:
            assert getattr(row, k) == Decimal(t[k]), k
    assert trades[-1]["exit_reason"] == "end_of_window"
    csv = pd.read_csv(art / "trades.csv", dtype=str)
    assert list(csv.columns) == fields
    assert csv.to_dict("records") == [{k: str(t[k]) for k in fields} for t in trades]


def test_bars_parquet_is_a_market_data_file_and_recomputes_the_provenance(run):
    art, result = run
    schema = pq.read_schema(art / "bars.parquet")
    assert schema.names == ["open_time", "open", "high", "low", "close", "volume"]
    assert str(schema.field("open_time").type) == "timestamp[ms, tz=UTC]"
    assert all(str(schema.field(c).type) == "double" for c in schema.names[1:])
    bars = pd.read_parquet(art / "bars.parquet")
    (p,) = result["provenance"]["data"]
    assert len(bars) == p["bars"] == result["summary"]["bars"]
    assert bars["open_time"].iloc[0] == pd.Timestamp(p["first_open_time"]) == pd.Timestamp(JOB["start"])
    assert bars["open_time"].iloc[-1] == pd.Timestamp(p["last_open_time"])
    assert (p["symbol"], p["timeframe"]) == ("BTCUSDT", "1m")
    assert doc_snippet()["bars_sha256"](art / "bars.parquet") == p["sha256"]


def test_config_sha256_is_the_documented_canonical_json(run):
    _, result = run
    canonical = json.dumps(JOB, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == result["provenance"]["config_sha256"]
