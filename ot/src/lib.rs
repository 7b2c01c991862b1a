//! Chou-Orlandi base OT and KOS OT extension (sans-IO).
