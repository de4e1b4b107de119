from ovsvx.cli import main

main()
