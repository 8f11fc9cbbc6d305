"""Simulation: scene specs, MuJoCo scenes as gymnasium envs, rendering with per-object visibility."""
