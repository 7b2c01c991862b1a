//! BFV (t = 2^k) preprocessing of linear layers with coefficient encoding.
