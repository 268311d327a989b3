from convaudit.cli import main

main()
