import os
import sys

from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

# The same examples on every machine and every run: derandomized generation
# and no example database, so no failure found once is replayed from a file
# that only one machine has.
settings.register_profile("keras_scl", derandomize=True, database=None, print_blob=True)
settings.load_profile("keras_scl")
