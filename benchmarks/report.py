# SPDX-License-Identifier: GPL-3.0-or-later
"""make bench: the report, bench.md (tables), the targets met or not, and converge.png."""
from __future__ import annotations

from converge import LABELS, PAIRS, SIDES
from harness import log


def fmt(value, digits=2):
    return "-" if value is None else ("%.*f" % (digits, value))


def markdown(report):
    lines = []
    m = report["machine"]
    lines += ["# podnet.mesh benchmark%s" % (" (QUICK mode: tiny counts, the harness only)" if report["quick"] else ""),
              "",
              "%s, %s cores, %s GiB; %s, kernel %s; ansible-core %s, Python %s; %s; took %.0f s." % (
                  m.get("cpu", "?"), m.get("cores"), m.get("memory_gib"), m.get("os", "?"), m.get("kernel"),
                  m.get("ansible_core", "?"), m.get("python"), report["started"], report["total_seconds"]), ""]
    conv = report.get("converge")
    if conv:
        lines += ["## Converge of the lab (2 pods per node), seconds", "",
                  "Median [min-max] over the rounds; forks %s, nsenter connection, pipelining, one ansible.cfg "
                  "for all. The floor has %s ping tasks per host (the count site.yml reported)." % (
                      conv["forks"], conv.get("floor_tasks")), "",
                  "| nodes | rounds | " + " | ".join(LABELS[s] for s in SIDES) + " |",
                  "|---:|---:|" + "---:|" * len(SIDES)]
        for nodes, sides in conv["stats"].items():
            cells = []
            for side in SIDES:
                s = sides.get(side)
                cells.append("-" if s is None else "%.1f [%.1f-%.1f]" % (s["median"], s["min"], s["max"]))
            rounds = max(s["n"] for s in sides.values())
            lines.append("| %s | %d | %s |" % (nodes, rounds, " | ".join(cells)))
        lines += ["", "Ratios of the medians [min-max of the per-round ratios]:", "",
                  "| nodes | " + " | ".join("%s / %s" % (LABELS[a], LABELS[b]) for a, b, t in PAIRS) + " |",
                  "|---:|" + "---:|" * len(PAIRS)]
        for nodes in conv["stats"]:
            cells = []
            for num, den, target in PAIRS:
                r = conv["ratios"]["%s/%s" % (num, den)].get(nodes)
                cells.append("-" if r is None else "%.2fx [%.2f-%.2f]" % (r["ratio"], r["min"], r["max"]))
            lines.append("| %s | %s |" % (nodes, " | ".join(cells)))
        lines += ["", "Where the time goes (medians): CPU seconds of the whole run (controller and nodes), "
                  "module processes on the nodes and their CPU seconds:", "",
                  "| nodes | run | wall s | CPU s | module processes | module CPU s | other CPU s |",
                  "|---:|---|---:|---:|---:|---:|---:|"]
        for nodes, sides in conv["stats"].items():
            for side in SIDES:
                s = sides.get(side)
                if s:
                    mod = s.get("module_cpu_seconds")
                    lines.append("| %s | %s | %.1f | %.1f | %s | %s | %s |" % (
                        nodes, LABELS[side], s["median"], s["cpu_seconds"], s.get("module_processes", "-"),
                        fmt(mod, 1), fmt(s["cpu_seconds"] - mod if mod is not None else None, 1)))
        lines += ["", "\"other CPU\" is the controller (ansible-playbook and its forks) plus the connection "
                  "(nsenter, sh). site.yml per task, first round at each node count (s = seconds of the task, "
                  "p = module processes, cpu = their CPU seconds):", ""]
        for side in ("site_cold", "site_warm"):
            heads, rows = [], {}
            for run in conv["runs"]:
                if run["side"] == side and run["round"] == 0 and run.get("tasks"):
                    heads.append(run["nodes"])
                    for index, task in enumerate(run["tasks"]):
                        mods = task.get("modules") or {}
                        rows.setdefault((index, task["name"]), {})[run["nodes"]] = "%.2f s%s" % (
                            task["seconds"], ", %d p, %.1f cpu" % (mods["processes"], mods["cpu_seconds"])
                            if mods else "")
            if heads:
                lines += ["| %s task | %s |" % (LABELS[side], " | ".join("%d nodes" % n for n in heads)),
                          "|---|" + "---:|" * len(heads)]
                for (index, name), cells in sorted(rows.items()):
                    short = name.split(" - ")[0].replace("|", "/")
                    short = short if len(short) <= 72 else short[:69] + "..."
                    lines.append("| %s | %s |" % (short, " | ".join(cells.get(n, "-") for n in heads)))
                lines.append("")
    routes = report.get("routes")
    if routes:
        sec = routes["seconds"]
        lines += ["## pod_route beside `ip -batch`, %d routes, seconds" % routes["routes"], "",
                  "Module run time: a fresh `%s` process running the module file (Python %s, pyroute2 %s), "
                  "start to exit; %d rounds, alternating." % (routes["python"], routes.get("python_version"),
                                                              routes.get("pyroute2"), routes["rounds"]), "",
                  "| operation | pod_route median [min-max] | ip -batch median [min-max] | ratio |",
                  "|---|---:|---:|---:|"]
        for title, ours, theirs in (("add %d" % routes["routes"], "module_add", "ip_batch_add"),
                                    ("same call, unchanged", "module_unchanged", None),
                                    ("purge %d" % (routes["routes"] - routes["routes"] // 2),
                                     "module_purge_half", "ip_batch_del_half")):
            o = sec[ours]
            t = sec.get(theirs) if theirs else None
            lines.append("| %s | %.3f [%.3f-%.3f] | %s | %s |" % (
                title, o["median"], o["min"], o["max"],
                "%.3f [%.3f-%.3f]" % (t["median"], t["min"], t["max"]) if t else "- (nothing to do)",
                "%.0fx" % (o["median"] / t["median"]) if t else "-"))
        lines.append("")
    cni = report.get("cni")
    if cni:
        lines += ["## CNI ADD and DEL of %d pods, ms per call" % cni["pods"], "",
                  "podnet under %s (Python %s, pyroute2 %s) beside %s + host-local; %d rounds, alternating." % (
                      cni["python"], cni.get("python_version"), cni.get("pyroute2"), cni["reference"], cni["rounds"]),
                  "", "| plugin | ADD median [min-max] | ADD p90 | DEL median [min-max] | DEL p90 | "
                  "ADD all pods, s | DEL all pods, s |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, per in cni["seconds"].items():
            a, d = per["ADD"], per["DEL"]
            lines.append("| %s | %.1f [%.1f-%.1f] | %.1f | %.1f [%.1f-%.1f] | %.1f | %.2f | %.2f |" % (
                name, a["median"] * 1e3, a["min"] * 1e3, a["max"] * 1e3, a["p90"] * 1e3,
                d["median"] * 1e3, d["min"] * 1e3, d["max"] * 1e3, d["p90"] * 1e3,
                per["ADD_total"]["median"], per["DEL_total"]["median"]))
        lines += ["", "podnet / reference, medians: ADD %.1fx, DEL %.1fx" % (
            cni["ratios"]["ADD median"], cni["ratios"]["DEL median"]), ""]
    mem = report.get("memory")
    if mem:
        lines += ["## Peak memory at %d nodes (MiB)" % mem["nodes"], "",
                  "Controller: the largest ansible-playbook process (its main process or a fork, from wait4) and "
                  "the peak of the summed PSS of all of them (sampled every 0.5 s). Module: the largest module "
                  "process on a node (GNU time's maximum RSS).", "",
                  "| run | controller largest process | controller all processes (PSS) | largest module process | "
                  "module processes |", "|---|---:|---:|---:|---:|"]
        for side in SIDES:
            r = mem["runs"].get(side)
            if r:
                lines.append("| %s | %.0f | %.0f | %s | %s |" % (
                    LABELS[side], r["controller_max_rss_kb"] / 1024.0, r["controller_pss_peak_kb"] / 1024.0,
                    fmt(r["module_max_rss_kb"] / 1024.0 if r.get("module_max_rss_kb") else None, 0),
                    r.get("module_processes", "-")))
        if mem.get("per_module"):
            lines += ["", "Largest process per site.yml task (MiB): " + ", ".join(
                "%s %.0f" % (k, v / 1024.0) for k, v in mem["per_module"].items())]
        lines.append("")
    targets = report.get("targets")
    if targets:
        lines += ["## Targets", "", "| target | measured | limit | met |", "|---|---:|---:|---|"]
        for t in targets:
            met = "yes" if t["met"] else "**no**"
            lines.append("| %s | %s | %s | %s |" % (t["target"], t["measured"], t["limit"], met))
        lines.append("")
    return "\n".join(lines)


def targets(report):
    result = []
    conv = report.get("converge")
    if conv:
        for num, den, limit in PAIRS:
            if limit is None:
                continue
            for nodes, r in conv["ratios"]["%s/%s" % (num, den)].items():
                if den == "classic_cold":
                    result.append({"target": "%d nodes: site.yml cold faster than classic cold" % nodes,
                                   "measured": "%.2fx" % r["ratio"], "limit": "< 1x", "met": r["ratio"] < 1.0})
                else:
                    result.append({"target": "%d nodes: %s / %s" % (nodes, LABELS[num], LABELS[den]),
                                   "measured": "%.2fx" % r["ratio"], "limit": "<= %.1fx" % limit,
                                   "met": r["ratio"] <= limit})
    routes = report.get("routes")
    if routes:
        for key, limit, title in (("module_add", 0.5, "pod_route %d routes in one call"),
                                  ("module_unchanged", 0.3, "pod_route %d routes, unchanged")):
            value = routes["seconds"][key]["median"]
            result.append({"target": title % routes["routes"], "measured": "%.3f s" % value,
                           "limit": "<= %.1f s" % limit, "met": value <= limit})
    cni = report.get("cni")
    if cni:
        value = cni["ratios"]["ADD median"]
        result.append({"target": "CNI ADD median / reference", "measured": "%.1fx" % value, "limit": "<= 3x",
                       "met": value <= 3.0})
    return result


def plot(report, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install -r benchmarks/requirements.txt): no plot")
        return False
    stats = report["converge"]["stats"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    styles = {"site_cold": ("tab:blue", "o", "-"), "site_warm": ("tab:blue", "s", "--"),
              "classic_cold": ("tab:red", "o", "-"), "classic_warm": ("tab:red", "s", "--"),
              "floor": ("tab:gray", "^", ":"), "routed_cold": ("tab:green", "o", "-"),
              "routed_warm": ("tab:green", "s", "--")}
    for side in SIDES:
        points = [(n, s[side]) for n, s in stats.items() if side in s]
        if not points:
            continue
        xs = [int(n) for n, s in points]
        ys = [s["median"] for n, s in points]
        err = [[s["median"] - s["min"] for n, s in points], [s["max"] - s["median"] for n, s in points]]
        color, marker, line = styles[side]
        ax.errorbar(xs, ys, yerr=err, color=color, marker=marker, linestyle=line, capsize=3, label=LABELS[side])
    ax.set_xlabel("lab nodes (2 pods each)")
    ax.set_ylabel("converge time, s (median, min-max)")
    ax.set_title("podnet.mesh site.yml (flat and routed lab) vs classic command tasks vs ping floor")
    ax.set_xticks(sorted(int(n) for n in stats))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
