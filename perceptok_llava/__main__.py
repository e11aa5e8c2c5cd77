"""``python -m perceptok_llava`` (and ``torchrun -m perceptok_llava``)."""

import sys

from perceptok_llava.cli import main

sys.exit(main())
