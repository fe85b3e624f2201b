"""The benchmark table: bench/results/latest.json rendered as Markdown for bench/results/latest.md and the README.

Every row states its own conditions (cluster kind, seed, parallelism, sample count, when, load) and shows a p95
only when it had at least 20 samples (bench.conditions). Results written before rows carried their conditions are
still rendered, from what they recorded, and say that their conditions were not recorded.
"""

from __future__ import annotations

import copy
from typing import Any

from bench.conditions import describe, render_conditions, summarise


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _legacy_summary(value: dict[str, Any], n: int | None, samples: list[float] | None = None) -> dict[str, Any]:
    """A summary as recorded before samples were counted; recomputed from the samples when they were kept."""
    if samples:
        return summarise(samples)
    out = {k: v for k, v in value.items() if k in ("median_s", "min_s", "max_s")}
    if n is not None:
        out["n"] = n
    return out


def upgrade(results: dict[str, Any]) -> dict[str, Any]:
    """Results in the current shape; older records are converted from what they hold (nothing is invented: a
    missing figure stays missing)."""
    r = copy.deepcopy(results)
    life = r.get("lifecycle")
    if life and "announced" not in life["time_to_ready"]:
        t, td, runs = life["time_to_ready"], life["teardown"], life.get("runs")
        keep = ("ratio", "target_median_s", "target_ratio", "samples_s")
        life["time_to_ready"] = {
            **{k: v for k, v in t.items() if k in keep},
            **_legacy_summary(t, runs, t.get("samples_s")),
            "announced": {"median_s": t.get("announced_median_s"), "n": runs},
            "floor": _legacy_summary(t["floor"], runs),
        }
        life["teardown"] = {
            **{k: v for k, v in td.items() if k in keep},
            **_legacy_summary(td, runs, td.get("samples_s")),
            "floor": _legacy_summary(td["floor"], runs),
        }
    burst = r.get("burst")
    if burst:
        for level in burst["levels"]:
            if "wall" not in level:
                level["samples"] = 1
                level["wall"] = {"n": 1, "median_s": level.pop("wall_s")}
                level["floor_wall"] = {"n": 1, "median_s": level.pop("floor_wall_s")}
    idle = r.get("idle")
    if idle and "wall" not in idle["idle"]:
        i = idle["idle"]
        i["resyncs"] = 1
        i["wall"] = {"n": 1, "median_s": i.pop("wall_s")}
        i["baseline"] = {
            "what": "Automation API: pulumi stack ls + pulumi stack output per stack",
            "wall_s": i.pop("floor_wall_s"),
            "pulumi_processes": i.pop("floor_pulumi_processes"),
            "stacks_listed": i.pop("floor_stacks_listed", None),
        }
        i["baseline_ratio"] = i.pop("ratio", None)
    db = r.get("db_branch")
    if db and "template" not in db:
        db["template"] = {"n": db.get("runs"), "median_s": db.pop("template_median_s")}
        db["dump_restore"] = {"n": db.get("runs"), "median_s": db.pop("dump_restore_median_s")}
    return r


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def to_markdown(results: dict[str, Any]) -> str:
    res = upgrade(results)
    m = res["machine"]
    lines = [
        f"Written by `python -m bench` (`make bench`) on {m['cpus']} CPUs / {m['memory_mib']} MiB; every row states "
        "its own conditions (p95 only from ≥ 20 samples).",
        "",
        "| benchmark | prenv | floor (same run) | ratio | target | | conditions |",
        "|---|---|---|---|---|---|---|",
    ]
    legacy = f"run started {res.get('when', '?')}"

    def cond(part: dict[str, Any]) -> str:
        c = part.get("conditions")
        return render_conditions(c) if c else f"{render_conditions(None)}; {part.get('when', legacy)}"

    life = res.get("lifecycle")
    if life:
        r, td = life["time_to_ready"], life["teardown"]
        ok = r["median_s"] <= r["target_median_s"] and r["ratio"] <= r["target_ratio"]
        lines.append(
            _row(
                "time to ready, **KWOK**: webhook → Deployments available, Ingress admitted, role logs in",
                f"{describe(r)}; PR comment says ready: median {r['announced']['median_s']} s",
                f"`kubectl apply --server-side` + `kubectl wait` + same SQL: {describe(r['floor'])}",
                f"{r['ratio']}x",
                f"median ≤ {r['target_median_s']:g} s, ratio ≤ {r['target_ratio']:g}",
                _verdict(ok),
                cond(life),
            )
        )
        lines.append(
            _row(
                "teardown, **KWOK**: close → namespace gone, database and role dropped, stack removed",
                describe(td),
                f"`kubectl delete namespace --wait` + `DROP`: {describe(td['floor'])}",
                f"{td['ratio']}x",
                f"median ≤ {td['target_median_s']:g} s",
                _verdict(td["median_s"] <= td["target_median_s"]),
                cond(life),
            )
        )
    real = res.get("realnode")
    if real:
        r, td = real["time_to_ready"], real["teardown"]

        def at(side: str, *names: str, of: dict[str, Any] = r) -> str:
            stages = of.get("stages") or {}
            found = [f"{n} {stages[side][f'{n}_median_s']} s" for n in names if f"{n}_median_s" in stages.get(side, {})]
            return f" (medians: {', '.join(found)})" if found else ""

        lines.append(
            _row(
                "time to ready, **real node**: webhook → the HTTPS page (Traefik, wildcard certificate) answers 200 "
                "with the new sha",
                f"{describe(r)}{at('prenv', 'namespace', 'available')}; PR comment says ready: median "
                f"{r['announced']['median_s']} s",
                "same manifests: `kubectl apply --server-side` + `kubectl wait` + same SQL + same HTTPS fetch: "
                f"{describe(r['floor'])}{at('floor', 'database', 'available')}",
                f"{r['ratio']}x",
                f"ratio ≤ {r['target_ratio']:g}",
                _verdict(r["ratio"] <= r["target_ratio"]),
                cond(real),
            )
        )
        lines.append(
            _row(
                "teardown, **real node**: close → namespace gone (pods stopped), database and role dropped, "
                "stack removed",
                describe(td),
                f"`kubectl delete namespace --wait` + `DROP`: {describe(td['floor'])}",
                f"{td['ratio']}x",
                "—",
                "",
                cond(real),
            )
        )
        helm, versus = real.get("helm"), real.get("helm_vs_builtin")
        if helm and versus:
            h = helm["time_to_ready"]
            lines.append(
                _row(
                    "time to ready, **real node, Helm chart** (`prenv:app.kind: helm`, examples/app/chart), same run "
                    "as the built-in shape above: webhook → the HTTPS page answers 200 with the new sha",
                    f"{describe(h)}{at('prenv', 'namespace', 'available', of=h)}; PR comment says ready: median "
                    f"{h['announced']['median_s']} s",
                    "same floor method on the chart's objects: "
                    f"{describe(h['floor'])}{at('floor', 'database', 'available', of=h)}",
                    f"{h['ratio']}x",
                    "—",
                    "",
                    cond(helm),
                )
            )
            lines.append(
                _row(
                    "Helm chart vs built-in shape, **real node**: median time to ready, same run, same floor method",
                    f"chart {h['median_s']} s vs built-in {r['median_s']} s",
                    f"floors: chart {h['floor']['median_s']} s vs built-in {r['floor']['median_s']} s "
                    f"({versus['floor_ratio']}x)",
                    f"{versus['ratio']}x",
                    f"chart ≤ {versus['target_ratio']:g}x built-in",
                    _verdict(versus["ratio"] <= versus["target_ratio"]),
                    cond(helm),
                )
            )
        rss = real["cluster_rss_mib"]
        left = real.get("leftovers_after_down")
        lines.append(
            _row(
                "`cluster up` with the real node (fresh state dir, warm toolchain), and the cluster's RSS",
                f"up {real['cluster_up_s']} s (1 sample); RSS {rss['after_up']} MiB after up, "
                f"{rss['after_runs']} MiB after the runs (cluster processes, pods not counted)",
                "—",
                "—",
                "—",
                "" if left is None else ("nothing left after down" if not left else f"**left: {', '.join(left)}**"),
                render_conditions(real["cluster_up_conditions"]) if "cluster_up_conditions" in real else cond(real),
            )
        )
    burst = res.get("burst")
    if burst:
        for level in burst["levels"]:
            lines.append(
                _row(
                    f"burst, **KWOK**: {level.get('prs', burst['prs'])} PRs labelled at once → all ready, "
                    f"parallelism {level['parallelism']}",
                    f"{describe(level['wall'])}, peak {level['peak_rss_mib']} MiB (service + pulumi)",
                    f"same objects and SQL, same parallelism: {describe(level['floor_wall'])}",
                    f"{level['ratio']}x",
                    "—",
                    "",
                    cond(level if "conditions" in level else burst),
                )
            )
    idle = res.get("idle")
    if idle:
        i, mem = idle["idle"], idle["memory"]
        floor = i.get("floor")
        base = i["baseline"]
        floor_text = (
            f"one API list of the namespaces + one checkpoint listing: {describe(floor)}"
            if floor
            else "floor not measured"
        )
        ratio = f"{i['ratio']}x" if floor and i.get("ratio") is not None else "n/a (no floor in this run)"
        lines.append(
            _row(
                f"idle resync, **KWOK**: {i['prs']} open PRs, all deployed and unchanged",
                f"{describe(i['wall'])}, {i['pulumi_processes']} pulumi processes, {i['github_requests']} GitHub "
                f"requests, {i['cpu_s']} CPU s",
                f"{floor_text}; baseline (not a floor), the Automation API listing: {base['wall_s']} s, "
                f"{base['pulumi_processes']} pulumi processes ({i['baseline_ratio']}x prenv's time)",
                ratio,
                f"0 processes, ≤ {i['target_github_requests']} requests",
                _verdict(i["pulumi_processes"] == 0 and i["github_requests"] <= i["target_github_requests"]),
                cond(i if "conditions" in i else idle),
            )
        )
        lines.append(
            _row(
                f"driver memory: `prenv serve` idle, {mem['tracked_environments']} tracked environments",
                f"RSS {mem['rss_mib']} MiB (peak {mem['peak_rss_mib']})",
                f"Python importing the same modules: {mem['floor_rss_mib']} MiB",
                "—",
                f"≤ {mem['target_rss_mib']} MiB",
                _verdict(mem["rss_mib"] <= mem["target_rss_mib"]),
                cond(mem if "conditions" in mem else idle),
            )
        )
    db = res.get("db_branch")
    if db:
        lines.append(
            _row(
                f"database branch of a {db['seed_bytes'] // 2**20} MiB seed",
                f"`CREATE DATABASE … TEMPLATE`: {describe(db['template'])}",
                f"`pg_dump \\| psql`: {describe(db['dump_restore'])}",
                f"{db['ratio']}x faster",
                f"≥ {db['target_ratio']}x",
                _verdict(db["ratio"] >= db["target_ratio"]),
                cond(db),
            )
        )
    return "\n".join(lines) + "\n"
