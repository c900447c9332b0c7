"""What other services import to reach the articles service: its internal reads (ArticleRecordsService)."""
