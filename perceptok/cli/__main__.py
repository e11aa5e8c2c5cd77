"""``python -m perceptok.cli`` (and ``torchrun -m perceptok.cli``, ``accelerate launch -m perceptok.cli``)."""

import sys

from perceptok.cli.main import main

sys.exit(main())
