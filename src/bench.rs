//! `mark1 bench <name>`: benchmarks that build their own nodes in-process and print
//! one JSON object (DESIGN §13.9), with a baseline measured in the same run.
