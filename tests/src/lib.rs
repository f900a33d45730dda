//! End-to-end tests of the API live in `tests/`: each starts the real router on
//! a real listener (port 0) over a fresh PostgreSQL or SQLite database.
