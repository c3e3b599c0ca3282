from faq_search.cli import main

main()
