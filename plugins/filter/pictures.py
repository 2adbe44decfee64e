# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters that draw the pod network as SVG: the mesh (topology_svg) and the verify matrix (matrix_svg).

Plain text out, standard library only: the same input gives the same bytes.
"""

from __future__ import annotations

import ipaddress
import math
import re

from ansible_collections.podnet.mesh.plugins.filter import mesh

FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
# Width of one character of FONT, in font sizes (a monospace font: the boxes fit the text).
CHAR = 0.62
SVG_NS = "http://www.w3.org/2000/svg"

# Colours that read apart for most colour-blind readers too; every colour also has a mark or a dash.
MODE_STYLE = {
    "host-gw": {"stroke": "#1f6fb4", "dash": None, "text": "host-gw"},
    "vxlan": {"stroke": "#d9731a", "dash": "9 5", "text": "vxlan"},
    "mixed": {"stroke": "#7b3fa0", "dash": "2 4", "text": "host-gw/vxlan"},
}
MODE_MEANING = {
    "host-gw": "host-gw: routes via the peer's node IP",
    "vxlan": "vxlan: through the overlay (%s)" % mesh.OVERLAY_DEVICE,
    "mixed": "each way its own mode (see the edge's tooltip)",
}
SUBNET_FILLS = ("#eef4fb", "#fdf2e6", "#eef8ee", "#f6eef8", "#f8f6e8", "#eaf6f6")
CELL_STYLE = {
    "pass": {"fill": "#2e9e4f", "mark": "\u2713", "ink": "#ffffff", "meaning": "passed"},
    "fail": {"fill": "#d23c3c", "mark": "\u2717", "ink": "#ffffff", "meaning": "failed"},
    "nat": {"fill": "#e8a317", "mark": "N", "ink": "#222222", "meaning": "NATed (failed)"},
    "self": {"fill": "#e4e4e4", "mark": "", "ink": "#222222", "meaning": "self"},
    "none": {"fill": "#ffffff", "mark": "?", "ink": "#888888", "meaning": "not probed"},
}
MARK_CLASS = {".": "pass", "X": "fail", "N": "nat"}
# The topology labels its edges up to this many pairs of nodes (5 nodes).
LABELLED_PAIRS = 10

# Characters XML 1.0 does not allow at all (a name may hold anything).
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _esc(text):
    """Text for an XML element or a quoted attribute: markup escaped, characters XML forbids replaced."""
    text = _NOT_XML.sub("\ufffd", str(text))
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def _n(value):
    """A coordinate as short, stable text (one decimal at most)."""
    text = "%.1f" % value
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def _width(text, size):
    return len(str(text)) * size * CHAR


class _Svg:
    """An SVG document built element by element, in drawing order."""

    def __init__(self):
        self.parts = []

    def add(self, tag, attrs, text=None, title=None):
        attr = "".join(' %s="%s"' % (key, _esc(_n(value) if isinstance(value, float) else value))
                       for key, value in attrs if value is not None)
        inner = ("<title>%s</title>" % _esc(title) if title is not None else "") + (_esc(text) if text is not None else "")
        self.parts.append("<%s%s>%s</%s>" % (tag, attr, inner, tag) if inner else "<%s%s/>" % (tag, attr))

    def open(self, tag, attrs=(), title=None):
        attr = "".join(' %s="%s"' % (key, _esc(value)) for key, value in attrs if value is not None)
        self.parts.append("<%s%s>" % (tag, attr) + ("<title>%s</title>" % _esc(title) if title is not None else ""))

    def close(self, tag):
        self.parts.append("</%s>" % tag)

    def text(self, x, y, text, size=12, anchor="start", weight=None, fill="#222222", cls=None, rotate=None):
        transform = "rotate(%s %s %s)" % (_n(rotate), _n(x), _n(y)) if rotate is not None else None
        self.add("text", [("x", float(x)), ("y", float(y)), ("font-size", size), ("text-anchor", anchor),
                          ("font-weight", weight), ("fill", fill), ("class", cls), ("transform", transform)], text)

    def rect(self, x, y, w, h, fill, stroke=None, rx=None, cls=None, title=None, dash=None, width=None):
        self.add("rect", [("x", float(x)), ("y", float(y)), ("width", float(w)), ("height", float(h)), ("rx", rx),
                          ("fill", fill), ("stroke", stroke), ("stroke-width", width), ("stroke-dasharray", dash),
                          ("class", cls)], title=title)

    def render(self, width, height, title, desc):
        head = ['<svg xmlns="%s" width="%s" height="%s" viewBox="0 0 %s %s" font-family="%s" role="img">'
                % (SVG_NS, _n(width), _n(height), _n(width), _n(height), _esc(FONT)),
                "<title>%s</title>" % _esc(title), "<desc>%s</desc>" % _esc(desc),
                '<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>' % (_n(width), _n(height))]
        return "\n".join(head + self.parts + ["</svg>"]) + "\n"


# ----------------------------------------------------------------------------- topology


def _address(text):
    return str(text).split("/", 1)[0] if text else None


def _node_ips(name, hv):
    """A node's node IPs, one per family of its pod CIDRs (the underlay address when it has no pod CIDR)."""
    ips = []
    for cidr in mesh.pod_cidrs(hv):
        ip = _address(mesh._node_ip(name, hv, mesh._family(cidr) or 4))
        if ip and ip not in ips:
            ips.append(ip)
    if not ips and mesh.underlay_address(hv, name):
        ips.append(mesh.underlay_address(hv, name))
    return ips


def _subnets(hv, ips):
    """The directly connected networks (as read on the node) its node IPs sit on, most specific first."""
    try:
        nets = mesh._node_networks(hv)
    except ValueError:
        nets = []
    found = []
    for text in ips:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        holding = sorted((net for net in nets if net.version == ip.version and ip in net), key=lambda net: -net.prefixlen)
        if holding and str(holding[0]) not in found:
            found.append(str(holding[0]))
    return tuple(found)


def topology(nodes, hostvars, backend="host-gw"):
    """The data topology_svg draws: {nodes, subnets, edges, counts}.

    nodes: [{name, node_ips, pod_cidrs, subnet}] in inventory order; subnets: [(subnets, [node
    names])] in order of first appearance, subnets () when the node's networks were not read;
    edges: one per pair of nodes, {a, b, mode, summaries}, mode the pair's mode from
    podnet.mesh.mesh_table, or mixed when each way has its own.
    """
    nodes = list(nodes)
    ways = {}
    for me in nodes:
        for peer in mesh.mesh_table(nodes, hostvars, me, backend):
            ways[(me, peer["name"])] = peer
    info, groups = [], []
    for name in nodes:
        hv = hostvars[name]
        ips = _node_ips(name, hv)
        subnet = _subnets(hv, ips)
        info.append({"name": name, "node_ips": ips, "pod_cidrs": mesh.pod_cidrs(hv), "subnet": subnet})
        for key, members in groups:
            if key == subnet:
                members.append(name)
                break
        else:
            groups.append((subnet, [name]))
    edges = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            there, back = ways.get((a, b)), ways.get((b, a))
            modes = [way["mode"] for way in (there, back) if way]
            if not modes:
                continue
            mode = modes[0] if len(set(modes)) == 1 else "mixed"
            summaries = ["%s -> %s" % (src, way["summary"]) for src, way in ((a, there), (b, back)) if way]
            edges.append({"a": a, "b": b, "mode": mode, "summaries": summaries})
    counts = dict((mode, sum(1 for e in edges if e["mode"] == mode)) for mode in MODE_STYLE)
    return {"nodes": info, "subnets": groups, "edges": edges, "counts": counts}


def _pairs_text(counts, total):
    text = "%d pair%s: %d host-gw, %d vxlan" % (total, "" if total == 1 else "s", counts["host-gw"], counts["vxlan"])
    return text + (", %d mixed" % counts["mixed"] if counts["mixed"] else "")


def topology_svg(nodes, hostvars, backend="host-gw"):
    """The mesh as an SVG picture: subnets as bands, nodes as boxes, every pair of nodes an edge by mode."""
    data = topology(nodes, hostvars, backend)
    size, small, pad, line = 14, 12, 10, 17
    boxes = {}
    box_w = max([_width(n["name"], size) for n in data["nodes"]]
                + [_width("node " + ip, small) for n in data["nodes"] for ip in n["node_ips"] or ["?"]]
                + [_width("pods " + c, small) for n in data["nodes"] for c in n["pod_cidrs"] or ["?"]] + [60]) + 2 * pad
    lines_of = dict((n["name"], 1 + len(n["node_ips"] or ["?"]) + len(n["pod_cidrs"] or ["?"])) for n in data["nodes"])
    box_h = max(list(lines_of.values()) + [1]) * line + pad + 4
    # Beyond LABELLED_PAIRS, colours and the legend tell the modes.
    labels = len(data["edges"]) <= LABELLED_PAIRS
    gap = 96 if labels else 40
    # Same-band pairs that are not neighbours arc above their band: room for the highest arc.
    row_of = {}
    for index, (_key, members) in enumerate(data["subnets"]):
        for position, name in enumerate(members):
            row_of[name] = (index, position)
    span = dict((index, 0) for index in range(len(data["subnets"])))
    for edge in data["edges"]:
        (ra, pa), (rb, pb) = row_of[edge["a"]], row_of[edge["b"]]
        if ra == rb:
            span[ra] = max(span[ra], abs(pa - pb))
    widest = max([len(members) for _key, members in data["subnets"]] + [1])
    margin = 24
    band_w = widest * box_w + (widest - 1) * gap + 2 * margin
    title_h, between = 56, 90
    y = title_h
    bands = []
    for index, (key, members) in enumerate(data["subnets"]):
        arc_room = 22 + 26 * (span[index] - 1) + (18 if labels else 0) if span[index] > 1 else 0
        top = y
        box_y = top + 30 + arc_room
        height = box_y - top + box_h + 18
        row_w = len(members) * box_w + (len(members) - 1) * gap
        x0 = margin + (band_w - row_w) / 2.0
        for position, name in enumerate(members):
            boxes[name] = (x0 + position * (box_w + gap), box_y)
        bands.append((key, top, height))
        y = top + height + between
    legend_y = y - between + 34
    count = len(data["nodes"])
    heading = "Pod network: %d node%s, %s" % (count, "" if count == 1 else "s", _pairs_text(data["counts"], len(data["edges"])))
    width = max([band_w + 2 * margin, _width(heading, 16) + 2 * margin]
                + [_width(text, small) + 54 + 2 * margin for text in MODE_MEANING.values()])
    height = legend_y + 24 * len([m for m in MODE_STYLE if m != "mixed" or data["counts"]["mixed"]]) - 4
    svg = _Svg()
    total = len(data["edges"])
    svg.text(margin, 30, heading, size=16, weight="bold")
    svg.text(margin, 48, "podnet_backend %s" % backend, size=small, fill="#555555")
    for index, (key, top, h) in enumerate(bands):
        label = "subnet " + ", ".join(key) if key else "subnet not read"
        svg.rect(margin, top, band_w, h, SUBNET_FILLS[index % len(SUBNET_FILLS)], stroke="#b8c4d0", rx=10,
                 cls="subnet", title=label)
        svg.text(margin + 12, top + 20, label, size=small, weight="bold", fill="#44546a", cls="subnet-label")
    # Edges under the boxes, their labels over everything.
    tags = []
    for edge in data["edges"]:
        style = MODE_STYLE[edge["mode"]]
        (ax, ay), (bx, by) = boxes[edge["a"]], boxes[edge["b"]]
        (ra, pa), (rb, pb) = row_of[edge["a"]], row_of[edge["b"]]
        if ra == rb and abs(pa - pb) > 1:
            left, right = (ax, bx) if ax < bx else (bx, ax)
            x1, x2, y1 = left + box_w / 2.0, right + box_w / 2.0, ay
            lift = 22 + 26 * (abs(pa - pb) - 2) + 8
            path = "M %s %s C %s %s %s %s %s %s" % (_n(x1), _n(y1), _n(x1), _n(y1 - lift * 1.33), _n(x2),
                                                    _n(y1 - lift * 1.33), _n(x2), _n(y1))
            mid = ((x1 + x2) / 2.0, y1 - lift)
        else:
            x1, y1 = ax + box_w / 2.0, ay + box_h / 2.0
            x2, y2 = bx + box_w / 2.0, by + box_h / 2.0
            path = "M %s %s L %s %s" % (_n(x1), _n(y1), _n(x2), _n(y2))
            if ra == rb:
                mid = ((x1 + x2) / 2.0, y1)
            else:
                # In the gap below the upper band, where no box is.
                _key, top, h = bands[min(ra, rb)]
                ly = top + h + between / 2.0
                t = (ly - y1) / (y2 - y1) if y2 != y1 else 0.5
                mid = (x1 + (x2 - x1) * t, ly)
        summary = "%s - %s: %s (%s)" % (edge["a"], edge["b"], style["text"], "; ".join(edge["summaries"]))
        svg.add("path", [("d", path), ("fill", "none"), ("stroke", style["stroke"]), ("stroke-width", "3"),
                         ("stroke-dasharray", style["dash"]), ("class", "edge %s" % edge["mode"])], title=summary)
        tags.append((mid, style, summary))
    for name in [n["name"] for n in data["nodes"]]:
        node = [n for n in data["nodes"] if n["name"] == name][0]
        x, y0 = boxes[name]
        svg.open("g", [("class", "node")], title="%s: node IP %s, pod CIDR %s" % (
            name, ", ".join(node["node_ips"]) or "not known", ", ".join(node["pod_cidrs"]) or "none"))
        svg.rect(x, y0, box_w, box_h, "#ffffff", stroke="#4a5a6a", rx=6, width="1.5")
        svg.text(x + pad, y0 + pad + size, name, size=size, weight="bold", cls="node-name")
        ty = y0 + pad + size
        for ip in node["node_ips"] or ["?"]:
            ty += line
            svg.text(x + pad, ty, "node " + ip, size=small, fill="#333333")
        for cidr in node["pod_cidrs"] or ["?"]:
            ty += line
            svg.text(x + pad, ty, "pods " + cidr, size=small, fill="#2b6a3a")
        svg.close("g")
    if labels:
        for (mx, my), style, summary in tags:
            w = _width(style["text"], 11) + 10
            svg.rect(mx - w / 2.0, my - 9, w, 17, "#ffffff", stroke=style["stroke"], rx=4, title=summary)
            svg.text(mx, my + 4, style["text"], size=11, anchor="middle", fill=style["stroke"], cls="edge-label")
    ly = legend_y
    for mode, style in MODE_STYLE.items():
        if mode == "mixed" and not data["counts"]["mixed"]:
            continue
        svg.add("line", [("x1", float(margin)), ("y1", float(ly - 4)), ("x2", float(margin + 44)), ("y2", float(ly - 4)),
                         ("stroke", style["stroke"]), ("stroke-width", "3"), ("stroke-dasharray", style["dash"])])
        svg.text(margin + 54, ly, "%s (%d)" % (MODE_MEANING[mode], data["counts"][mode]), size=small, cls="legend")
        ly += 24
    desc = "Nodes by subnet; every pair of nodes joined by its mode. %s." % _pairs_text(data["counts"], total)
    return svg.render(math.ceil(width), math.ceil(height), heading, desc)


# ----------------------------------------------------------------------------- matrix


def matrix(nodes, hostvars, result_var="podnet_verify_check"):
    """The data matrix_svg draws: {panels, probes, failed}, a panel per matrix of probe_report.

    panel: {family, rows: [(label, address)], columns: [(label, address, kind)], cells: [[state]],
    counts: {state: n}}; state pass, fail, nat, self or none (not probed).
    """
    data = mesh.probe_matrices(list(nodes), hostvars, result_var)
    panels = []
    for entry in data["matrices"]:
        columns = [(label, address, "pod") for label, address in entry["pods"]]
        columns += [(address, address, "external") for address in entry["externals"]]
        cells, counts = [], dict((state, 0) for state in CELL_STYLE)
        for label, address in entry["pods"]:
            row = []
            for column, caddress, kind in columns:
                if kind == "pod" and column == label:
                    state = "self"
                else:
                    mark = data["marks"].get(label, {}).get(caddress) if caddress else None
                    state = MARK_CLASS.get(mark, "none")
                counts[state] += 1
                row.append(state)
            cells.append(row)
        panels.append({"family": entry["family"], "rows": list(entry["pods"]), "columns": columns, "cells": cells,
                       "counts": counts})
    return {"panels": panels, "probes": data["probes"], "failed": len(data["failures"])}


def _col_x(x0, step, pods, index):
    """Left edge of column index: the external columns a little apart from the pods'."""
    return x0 + index * step + (12 if index >= pods else 0)


def matrix_svg(nodes, hostvars, result_var="podnet_verify_check"):
    """The verify matrix as an SVG picture: a coloured cell per probe, one panel per address family."""
    data = matrix(nodes, hostvars, result_var)
    size, cell, step, margin = 12, 22, 24, 24
    heading = "Connectivity: %d probes, %d failed" % (data["probes"], data["failed"])
    svg = _Svg()
    svg.text(margin, 30, heading, size=16, weight="bold", fill="#b02a2a" if data["failed"] else "#1d6b35")
    y, width = 48, 360.0
    for panel in data["panels"]:
        rows, columns = panel["rows"], panel["columns"]
        label_w = max([_width(label, size) + _width(address or "no address", size - 1) + 18
                       for label, address in rows] + [40])
        head_h = max([_width(label, size) * 0.72 for label, _a, _k in columns] + [20]) + 28
        x0 = margin + label_w + 8
        pods = len([c for c in columns if c[2] == "pod"])
        family = "IPv%d" % panel["family"] if panel["family"] else "no address"
        counts = panel["counts"]
        title = "%s: %d passed, %d failed, %d NATed" % (family, counts["pass"], counts["fail"], counts["nat"])
        if panel["counts"]["none"]:
            title += ", %d not probed" % panel["counts"]["none"]
        svg.text(margin, y + 18, title, size=14, weight="bold", cls="panel")
        gy = y + 26 + head_h
        svg.open("g", [("class", "matrix"), ("data-family", family)])

        if pods:
            svg.text(_col_x(x0, step, pods, 0), y + 40, "to pods", size=size - 1, fill="#555555")
        if len(columns) > pods:
            svg.text(_col_x(x0, step, pods, pods), y + 40, "to external", size=size - 1, fill="#555555")
        for index, (label, address, kind) in enumerate(columns):
            cx = _col_x(x0, step, pods, index) + cell / 2.0
            svg.text(cx + 4, gy - 6, label, size=size, rotate=-45, cls="column",
                     fill="#222222" if kind == "pod" else "#6a4a00")
        for r, (label, address) in enumerate(rows):
            ry = gy + r * step
            svg.text(margin + label_w - _width(address or "no address", size - 1) - 12, ry + cell / 2.0 + 4, label,
                     size=size, anchor="end", cls="row")
            svg.text(margin + label_w, ry + cell / 2.0 + 4, address or "no address", size=size - 1, anchor="end",
                     fill="#666666")
            for c, state in enumerate(panel["cells"][r]):
                style = CELL_STYLE[state]
                clabel, caddress, _kind = columns[c]
                tip = None if state == "self" else "%s (%s) -> %s%s: %s" % (
                    label, address or "no address", clabel, " (%s)" % caddress if caddress != clabel else "",
                    style["meaning"])
                cx = _col_x(x0, step, pods, c)
                svg.open("g", [("class", "cell %s" % state)], title=tip)
                svg.rect(cx, ry, cell, cell, style["fill"], stroke="#bbbbbb" if state == "none" else None, rx=3,
                         dash="3 2" if state == "none" else None)
                if style["mark"]:
                    svg.text(cx + cell / 2.0, ry + cell / 2.0 + 5, style["mark"], size=14, anchor="middle",
                             weight="bold", fill=style["ink"])
                svg.close("g")
        svg.close("g")
        right = _col_x(x0, step, pods, len(columns)) + max([_width(label, size) * 0.72 for label, _a, _k in columns[-1:]] + [0])
        width = max(width, right + margin, margin + _width(title, 14) + margin)
        y = gy + len(rows) * step + 22
    if not data["panels"] or not any(panel["rows"] for panel in data["panels"]):
        svg.text(margin, y + 14, "no probe results", size=size, fill="#555555")
        y += 24
    lx = margin
    y += 8
    for state in ("pass", "fail", "nat", "self", "none"):
        style = CELL_STYLE[state]
        svg.open("g", [("class", "legend %s" % state)])
        svg.rect(lx, y, 16, 16, style["fill"], stroke="#bbbbbb" if state in ("none", "self") else None, rx=3,
                 dash="3 2" if state == "none" else None)
        if style["mark"]:
            svg.text(lx + 8, y + 12.5, style["mark"], size=11, anchor="middle", weight="bold", fill=style["ink"])
        svg.text(lx + 22, y + 12.5, style["meaning"], size=size - 1)
        svg.close("g")
        lx += 22 + _width(style["meaning"], size - 1) + 18
    width = max(width, lx + margin)
    height = y + 16 + margin
    desc = ("Rows are source pods, columns destination pods then external hosts, one cell per probe. %s."
            % heading)
    return svg.render(math.ceil(width), math.ceil(height), heading, desc)


class FilterModule:
    def filters(self):
        return {"topology_svg": topology_svg, "matrix_svg": matrix_svg}
