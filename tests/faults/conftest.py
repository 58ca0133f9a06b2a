"""The fault suite's bad-input generator (bad_inputs.py) is importable by its tests."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
