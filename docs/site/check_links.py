# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check the internal links of a built HTML site, offline.

Every relative href or src of every page must name a file of the site, and
every #fragment an id (or a name) in the page it points to. Links with a
scheme (https:, mailto: ...) are external and not checked.

usage: check_links.py HTMLDIR
"""

from __future__ import annotations

import os
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.anchors = set()
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.anchors.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append((tag, attrs[key], self.getpos()[0]))


def _parse(path, cache):
    if path not in cache:
        page = _Page()
        with open(path, encoding="utf-8") as f:
            page.feed(f.read())
        cache[path] = page
    return cache[path]


def check(root):
    """Return one message per broken internal link under root."""
    cache = {}
    broken = []
    pages = sorted(
        os.path.join(top, name)
        for top, dummy, names in os.walk(root)
        for name in names
        if name.endswith(".html")
    )
    for page in pages:
        for tag, link, line in _parse(page, cache).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("javascript:"):
                continue
            where = "%s:%d: <%s> %s" % (os.path.relpath(page, root), line, tag, link)
            target = page
            if parts.path:
                target = os.path.normpath(os.path.join(os.path.dirname(page), unquote(parts.path)))
                if os.path.isdir(target):
                    target = os.path.join(target, "index.html")
                if not os.path.isfile(target):
                    broken.append("%s: no such file" % where)
                    continue
            fragment = unquote(parts.fragment)
            if fragment and target.endswith(".html"):
                if fragment not in _parse(target, cache).anchors:
                    broken.append("%s: no anchor #%s" % (where, fragment))
    return pages, broken


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    pages, broken = check(argv[1])
    for message in broken:
        print(message)
    print("%d pages, %d broken internal links" % (len(pages), len(broken)))
    return 1 if broken or not pages else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
