"""Tripwire: statistical tripwires on every tick, an LLM triage on every trip.

The domain package. It never imports Ray, Ray Serve or LangGraph (see DESIGN.md section 2);
the runtime layers (actors/, graphs/, serve_apps/) import it.
"""

__version__ = "0.1.0"
