from conduit_server.cli import main

main()
