"""Placeholder package: populated by later issues (see DESIGN.md section 2)."""
