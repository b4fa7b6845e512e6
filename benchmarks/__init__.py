"""``make bench``: reelgate's speed and memory figures, and the targets they are held to.

Speed and memory targets live here, never in timed tests: a test that fails
when the machine is busy proves nothing. Each section measures the things it
compares side by side, interleaved in one run, so the ratios it prints
(PostgreSQL / SQLite, a full table / an empty one, a large file / a small one)
survive a noisy machine even when the absolute figures do not.

What each figure means and why its target is what it is: ``docs/benchmarks.md``.
The package never changes reelgate's code and leaves nothing behind: scratch
databases and directories are removed however a run ends.
"""
