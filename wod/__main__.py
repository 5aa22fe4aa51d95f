from wod.cli import main

main()
