"""Everything that touches technology: stores, serialisation, keys, users."""
