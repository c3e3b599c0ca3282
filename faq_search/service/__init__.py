"""The HTTP service behind ``faq-search serve``; start at :mod:`faq_search.service.app`."""
