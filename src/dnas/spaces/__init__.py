"""Search spaces: what can be searched (candidate ops, cell and stage structure)."""
