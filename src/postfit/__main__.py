from postfit.cli import main

main()
