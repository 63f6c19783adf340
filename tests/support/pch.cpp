// Compiles the tests' precompiled header once; every test target reuses it.
