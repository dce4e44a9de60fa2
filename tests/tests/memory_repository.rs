//! The repository contract against the in-memory fake.

mod contract;

use adapters::memory::InMemoryConnectionRepository;

async fn fresh(page_size: usize) -> InMemoryConnectionRepository {
    InMemoryConnectionRepository::with_page_size(page_size)
}

repository_contract!(fresh);

async fn orphan(repo: std::sync::Arc<InMemoryConnectionRepository>, id: domain::ConnectionId) {
    repo.remove_connection_row_only(&id);
}

pruning_contract!(fresh, orphan);
