"""``python -m smallbatch_book``: build the book (see :mod:`smallbatch_book.build`)."""

import sys

from .build import main

sys.exit(main())
