from meshstat.cli import console_main

console_main()
