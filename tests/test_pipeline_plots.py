"""The demo's figures: labelers side by side, base vs fine-tuned, and the note when everything is at chance."""
from __future__ import annotations

import pandas as pd

from igft.pipeline.plots import all_at_chance, plot_labelers, plot_stage2_comparison


def test_all_at_chance_ignores_rounding_noise_but_not_signal():
    assert all_at_chance([0.0, 1e-13, -2e-14])
    assert not all_at_chance([0.0, 0.05])
    assert not all_at_chance([None, None])


def test_plots_are_written_and_flag_chance(tmp_path, monkeypatch):
    import matplotlib.axes

    notes = []
    real_text = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, *a, **k: notes.append(a[2]) or real_text(self, *a, **k))
    table = pd.DataFrame([{"labeler": "a", "AMI_x_NCA": 1e-13, "AMI": 0.0, "NCA": 0.0, "accuracy_hungarian": 0.0}])
    assert plot_labelers(table, tmp_path / "chance.png").stat().st_size > 0
    assert any("at chance" in n for n in notes)
    notes.clear()
    comparison = {"base": {"intent_f1": 0.05, "malformed_share": 0.0}, "finetuned": {"intent_f1": 0.3, "malformed_share": 0.0}}
    assert plot_stage2_comparison(comparison, tmp_path / "s2.png").stat().st_size > 0
    assert not any("at chance" in n for n in notes)
