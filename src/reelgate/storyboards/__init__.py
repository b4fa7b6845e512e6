"""Storyboards: an ordered list of shots, run as jobs, joined into one video
(``model`` the values, ``store`` the table, ``driver`` the worker's loop, ``wire`` the
API's view)."""
