"""Robots: one folder per robot (model file, joints, action layout, limits, controller)."""
