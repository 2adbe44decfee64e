# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sphinx configuration of the podnet.mesh documentation site.

tests/utils/build-docs.sh assembles the source tree next to this file: the
collection reference that antsibull-docs generates (collections/), README.md
and the guides (docs/*.md), laid out as in the repository so that the
guides' relative links resolve unchanged.
"""

from __future__ import annotations

import posixpath
import re

project = "podnet.mesh"
copyright = "podnet.mesh contributors"
html_short_title = "podnet.mesh"
html_title = "podnet.mesh documentation"

extensions = ["myst_parser", "sphinx_antsibull_ext"]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# The guides link to each other's headings by GitHub's slugs (#ipam).
myst_heading_anchors = 4
myst_enable_extensions = ["deflist"]

pygments_style = "ansible"
# Fenced blocks without a language in the guides are plain text (trees, nft
# rule sets, command output); the reference names its languages.
highlight_language = "none"

html_theme = "sphinx_ansible_theme"
html_theme_options = {"display_version": False}
html_show_sphinx = False
html_use_modindex = False
html_use_index = False
html_copy_source = False

default_role = "any"
# Every reference must resolve: the build (sphinx-build -n -W) fails otherwise.
nitpicky = True
# The site is built offline: no intersphinx inventories are fetched; the few
# ansible-core labels the reference uses are defined in ansible-core.rst.

# A Markdown link to a directory ("[the guides](docs/)", as a repository
# browser shows it) leads to that directory's index page.
_DIR_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:)([^()\s#]*/)(#[^()\s]*)?\)")


def _link_directories(app, docname, source):
    if not str(app.env.doc2path(docname)).endswith(".md"):
        return

    def index_of(match):
        path = posixpath.normpath(posixpath.join(posixpath.dirname(docname), match[1], "index"))
        if path not in app.env.found_docs:
            return match[0]
        return "](%sindex.md%s)" % (match[1], match[2] or "")

    source[0] = _DIR_LINK.sub(index_of, source[0])


def _home_link(app, pagename, templatename, context, doctree):
    # The theme's logo leads to documentation_home_url on every page: make it
    # this site's entry page, relative to each page, so the site works anywhere.
    context["theme_documentation_home_url"] = context["pathto"](app.config.root_doc)


def setup(app):
    app.connect("source-read", _link_directories)
    app.connect("html-page-context", _home_link)
