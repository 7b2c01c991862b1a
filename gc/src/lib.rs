//! Boolean circuits, Bristol Fashion, half-gates garbling with free-XOR.
