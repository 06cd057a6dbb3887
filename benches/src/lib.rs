//! Support code for the alys-engine benchmarks.
