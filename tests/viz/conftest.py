"""The viz tests draw with the Agg backend (the tests may choose the backend; the library never does)."""

import matplotlib

matplotlib.use("Agg")
