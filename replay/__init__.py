"""Episode logging and replay: every episode as a rosbag2 (MCAP) bag, replayed in sim, on the
robot, as plots and in Meshcat.

One episode format serves recording, evaluation and replay: :mod:`.recorder` writes it,
:mod:`.reader` reads it back (also from a bag cut short by a crash), :mod:`.replay` re-runs it.
"""
