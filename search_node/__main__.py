from search_node.node import main

main()
