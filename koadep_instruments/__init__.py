"""The built-in Keck instruments, each an ordinary koadep plugin.

Every instrument's rules live in one module, ``koadep_instruments/<instr>.py``,
and are registered through the ``koadep.instruments`` entry-point group exactly
as a third-party plugin would be.
"""
