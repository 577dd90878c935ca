"""The web-book toolchain: it turns the notebooks and stored results into the static book.

Kept outside the research package (``smallbatch`` imports nothing from here, and nothing
here is needed to train, measure or analyse):

- ``build``: execute the notebooks with papermill and render them with Jupyter Book
  (``python -m smallbatch_book``; ``make book``);
- ``render``: the plotly renderer that writes figures as static HTML in the build's kernels;
- ``sphinxext``: the Sphinx extension that serves plotly.js and MathJax from the book's own
  ``_static`` folder, so the book works offline.
"""
