"""HTML of the membership section: ROC on log-log axes, the attacks' numbers, hardening."""

from __future__ import annotations

from typing import Any

import numpy as np

from advml.report.components import esc, figure, num, pct, table, verdict_badge
from advml.report.privacy_figures import roc_figure

__all__ = ["render"]


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    parts = [
        "<p>A membership-inference attacker holds a record and asks: was it in this model's "
        "training data? For medical or financial models the answer alone can be the leak. "
        "The audit knows the answer and checks how often the attacker gets it right: "
        f"{section['n_members']} training records (members: {esc(section['members_source'])}) "
        f"against {section['n_non_members']} test records the model never saw. Each attack "
        f"sets its threshold on {section['n_population']} other test records, as a real "
        "attacker with similar data would.</p>",
        f"<div class='card'>{verdict_badge(section['verdict'])}</div>",
    ]
    attacks = section["attacks"]
    curves = {a["name"]: a["curve"] for a in attacks if a.get("curve")}
    if curves:
        n_out = min(a["n_non_members"] for a in attacks)
        parts.append(
            figure(
                roc_figure(curves, n_non_members=n_out),
                alt="ROC curves of the membership attacks on log-log axes",
                caption="<b>ROC curves, log-log axes.</b> Each curve shows, as the attacker "
                "lowers its threshold, the share of training records it finds (up) against "
                "the share of unseen records it wrongly flags (right). The dashed diagonal is "
                "guessing. What matters is the far left: an attack that finds members while "
                "flagging almost no one else is a real threat even when its average accuracy "
                "is low (Carlini et al. 2022).",
                fig_id="fig-membership-roc",
            )
        )
    if attacks:
        parts.append(
            table(
                (
                    "attack",
                    "AUC",
                    "TPR at 0.1% FPR",
                    "TPR at 1% FPR",
                    "balanced accuracy",
                    "advantage",
                    "members / non-members",
                    "queries",
                ),
                (
                    (
                        a["name"]
                        + (f" ({a['shadows']} shadows)" if "shadows" in a else "")
                        + (f" ({a['references']} {a['mode']} models)" if "references" in a else ""),
                        num(a["auc"]),
                        pct(a["tpr_at_0_1_fpr"]),
                        pct(a["tpr_at_1_fpr"]),
                        pct(a["balanced_accuracy"]),
                        num(a["advantage"]),
                        f"{a['n_members']} / {a['n_non_members']}",
                        a["queries"],
                    )
                    for a in attacks
                ),
            )
        )
        if section.get("executor"):  # issue 16: what trained the reference models
            ran = section["executor"]
            parts.append(
                f"<p class='sub'>Reference models trained by the {esc(ran['executor'])} "
                f"executor, {ran['workers']} worker(s).</p>"
            )
        if min(a["n_non_members"] for a in attacks) < 1000:
            parts.append(
                "<p class='sub'>With fewer than 1,000 non-members, TPR at 0.1% FPR is the "
                "share of members found with no false positive at all.</p>"
            )
    if section["hardening"]:
        parts.append(
            "<h3>Output hardening</h3><p>The same attacks when the model's answers are "
            "hardened before they leave the API. None of these changes the predicted label, "
            "so accuracy is unchanged; only what the scores reveal.</p>"
        )
        rows = []
        for h in section["hardening"]:
            if not h["attacks"]:
                rows.append((h["label"], "–", "–", "–", h["note"]))
            for a in h["attacks"]:
                rows.append(
                    (h["label"], a["name"], num(a["auc"]), pct(a["tpr_at_1_fpr"]), h["note"])
                )
        parts.append(table(("output", "attack", "AUC", "TPR at 1% FPR", "note"), rows))
    trade = section["trade_off"]["rows"]
    if trade:
        parts.append(
            "<h3>Privacy and utility</h3><p>Copies of the model trained with DP-SGD "
            "(per-example gradient clipping and noise, Abadi et al. 2016) on the same training "
            "records. ε bounds what any attack can learn about one record (smaller is more "
            "private); the loss attack's AUC is what this attack still gets.</p>"
        )
        parts.append(
            table(
                ("training", "ε", "accuracy", "loss-attack AUC", "TPR at 1% FPR"),
                (
                    (
                        r["method"],
                        "∞" if r["epsilon"] is None else f"{r['epsilon']:.2f}",
                        pct(r["accuracy"]),
                        num(r["auc"]),
                        pct(r["tpr_at_1_fpr"]),
                    )
                    for r in trade
                ),
            )
        )
    if section["skipped"]:
        parts.append("<h3>Skipped</h3><ul>")
        parts += [f"<li>{esc(s['attack'])}: {esc(s['reason'])}</li>" for s in section["skipped"]]
        parts.append("</ul>")
    return "\n".join(parts)
