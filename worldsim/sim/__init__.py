"""Simulation: scene specs, MuJoCo scenes as gymnasium envs, rendering with per-object visibility, events and
captions from simulator state, impossible (violation) variants, multi-shot cameras, and any gymnasium env as a scene."""
